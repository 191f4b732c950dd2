# Reference Harrell's C and its variance from R survival::concordance, and the log-rank p of two groups
# from survdiff. Usage: Rscript concordance.R in.tsv out.tsv; in.tsv columns: time, event, risk, group
suppressPackageStartupMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
d <- read.delim(args[1])
fit <- concordance(Surv(time, event) ~ risk, data = d, reverse = TRUE)
lr <- survdiff(Surv(time, event) ~ group, data = d)
out <- data.frame(c = unname(fit$concordance), var = unname(fit$var),
                  logrank_p = pchisq(lr$chisq, df = 1, lower.tail = FALSE))
write.table(format(out, digits = 17), args[2], sep = "\t", row.names = FALSE, quote = FALSE)
