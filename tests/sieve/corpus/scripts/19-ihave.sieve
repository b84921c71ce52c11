require ["ihave", "fileinto"];
if ihave "vnd.example.nothing" { nothing_here "x"; } else { fileinto "NoIhave"; }
