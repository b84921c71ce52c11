require ["mime", "fileinto"];
if header :mime :anychild :subtype "content-type" "pdf" { fileinto "PDF"; }
if header :mime :param "charset" "content-type" "utf-8" { fileinto "UTF8"; }
