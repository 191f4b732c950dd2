# Reference DeLong AUC CI and paired test from R pROC. Usage: Rscript delong.R in.tsv out.tsv
# in.tsv columns: label, a, b (two scores of the same cases)
suppressPackageStartupMessages(library(pROC))
args <- commandArgs(trailingOnly = TRUE)
d <- read.delim(args[1])
ra <- roc(d$label, d$a, levels = c(0, 1), direction = "<", quiet = TRUE)
rb <- roc(d$label, d$b, levels = c(0, 1), direction = "<", quiet = TRUE)
ca <- ci.auc(ra, method = "delong")
t <- roc.test(ra, rb, method = "delong", paired = TRUE)
out <- data.frame(auc = as.numeric(ca[2]), lo = as.numeric(ca[1]), hi = as.numeric(ca[3]),
                  var = var(ra, method = "delong"), p_paired = t$p.value)
write.table(format(out, digits = 17), args[2], sep = "\t", row.names = FALSE, quote = FALSE)
