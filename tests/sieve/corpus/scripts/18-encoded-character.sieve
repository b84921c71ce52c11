require ["encoded-character", "fileinto"];
if header :contains "subject" "${unicode:fc}r M${hex:c3 a4}rz" { fileinto "Maerz"; }
