# Reference ComBat with a reference batch from Bioconductor sva. Usage: Rscript combat_ref.R in.tsv out.tsv
# in.tsv: column batch, then feature columns (rows = samples). Batch "T" is the reference.
suppressPackageStartupMessages(library(sva))
args <- commandArgs(trailingOnly = TRUE)
d <- read.delim(args[1], check.names = FALSE)
x <- t(as.matrix(d[, -1]))
res <- ComBat(x, batch = d$batch, ref.batch = "T", par.prior = args[3] == "parametric", mean.only = FALSE)
write.table(format(as.data.frame(t(res)), digits = 17), args[2], sep = "\t", row.names = FALSE, quote = FALSE)
