require ["foreverypart", "mime", "fileinto"];
foreverypart { if header :mime :type "content-type" "application" { fileinto "HasApp"; break; } }
