require ["subaddress", "fileinto", "variables"];
if address :detail :matches "to" "*" {
  if string :is "${1}" "" { keep; } else { fileinto "Plus/${1}"; }
}
