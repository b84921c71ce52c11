require ["index", "fileinto"];
if header :index 1 :last :contains "received" "a.example.net" { fileinto "Origin-A"; }
if header :index 2 :contains "received" "b.example.net" { fileinto "Second-B"; }
