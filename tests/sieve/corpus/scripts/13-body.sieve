require ["body", "fileinto"];
if body :text :contains "invoice" { fileinto "Invoices"; }
if body :content "application/pdf" :contains "" { fileinto "Attachments"; }
if body :raw :contains "=C3=BC" { fileinto "QP"; }
