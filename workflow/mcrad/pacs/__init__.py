"""Stage 3 at the PACS (`mcrad pacs poll`): new studies found with QIDO-RS, retrieved with WADO-RS, scored by the
locked bundles through the same per-case stages as the study, results stored back with STOW-RS (a DICOM SR per
study, optionally a SEG) and written to prospective/pacs/<endpoint>/scores.tsv under pseudonymous ids.

client (security policy, connection), query (search, series, retrieval), scoring (the locked pipeline), sr (the
DICOM written back), state (SQLite idempotence, audit log), and here the poll itself: idempotent (a study
already scored by the same bundles is skipped), restartable (state is recorded only after the SR is stored;
UIDs derive from study and bundles, so a retry stores the same SR), one failing study never blocks the others.
"""
