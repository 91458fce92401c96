"""`posttrain surgery ...`: thin commands around the architecture operators of
posttrain/model/surgery/ (block expansion, vocabulary extension, LEP)."""
