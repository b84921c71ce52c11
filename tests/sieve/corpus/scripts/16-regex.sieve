require ["regex", "variables", "fileinto"];
if header :regex "subject" "order ([0-9]+) has (shipped|arrived)" { fileinto "Orders/${1}"; }
if header :regex "subject" "^\\[([a-z]+)\\]" { fileinto "Tag/${1}"; }
