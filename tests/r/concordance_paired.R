# Reference paired comparison of two risk scores' C-indices on the same patients from R survival::concordance
# for both at once (infinitesimal-jackknife covariance), contrast c(1, -1). The formula form takes one predictor, so
# each score enters as the linear predictor of a Cox model held at coefficient 1 (same ordering as the score).
# Usage: Rscript concordance_paired.R in.tsv out.tsv; in.tsv columns: time, event, a, b
suppressPackageStartupMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
d <- read.delim(args[1])
fa <- coxph(Surv(time, event) ~ a, data = d, init = 1, control = coxph.control(iter.max = 0))
fb <- coxph(Surv(time, event) ~ b, data = d, init = 1, control = coxph.control(iter.max = 0))
stopifnot(coef(fa) == 1, coef(fb) == 1)
fit <- concordance(fa, fb)
contr <- c(1, -1)
diff <- sum(contr * fit$concordance)
v <- drop(t(contr) %*% fit$var %*% contr)
out <- data.frame(c_a = fit$concordance[1], c_b = fit$concordance[2], cov = fit$var[1, 2], diff = diff,
                  p = 2 * pnorm(-abs(diff) / sqrt(v)))
write.table(format(out, digits = 17), args[2], sep = "\t", row.names = FALSE, quote = FALSE)
