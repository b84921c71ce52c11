require ["ihave", "fileinto"];
if ihave "vnd.example.flux" {
  flux :capacitor "88";
} else {
  fileinto "Plain";
}
