require ["date", "relational", "fileinto"];
if date :value "ge" :originalzone "date" "hour" "12" { fileinto "Afternoon"; }
if date :is :zone "+0000" "date" "weekday" "0" { fileinto "Sunday"; }
if date :is "date" "year" "2026" { fileinto "Y2026"; }
