# Reference multi-class AUC (Hand & Till M) and one-vs-rest DeLong CIs from R pROC.
# Usage: Rscript multiclass.R in.tsv out.tsv; in.tsv columns: label (class name), then p_<class> per class.
suppressPackageStartupMessages(library(pROC))
args <- commandArgs(trailingOnly = TRUE)
d <- read.delim(args[1], stringsAsFactors = FALSE)
prob <- as.matrix(d[, grep("^p_", names(d))])
classes <- sub("^p_", "", colnames(prob))
colnames(prob) <- classes
m <- multiclass.roc(factor(d$label, levels = classes), prob, quiet = TRUE)
out <- data.frame(class = "hand_till", auc = as.numeric(m$auc), lo = NA, hi = NA)
for (k in classes) {
  r <- roc(as.integer(d$label == k), prob[, k], levels = c(0, 1), direction = "<", quiet = TRUE)
  ci <- ci.auc(r, method = "delong")
  out <- rbind(out, data.frame(class = k, auc = as.numeric(ci[2]), lo = ci[1], hi = ci[3]))
}
write.table(format(out, digits = 17), args[2], sep = "\t", row.names = FALSE, quote = FALSE)
