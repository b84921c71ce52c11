require ["envelope", "fileinto", "subaddress"];
if envelope :detail "to" "invoices" { fileinto "Invoices"; }
elsif envelope :domain :is "from" "spam.example" { fileinto "Junk"; }
elsif envelope :localpart :is "from" "ann" { fileinto "Ann"; }
