require "fileinto";
if header :matches "subject" "*?*" { fileinto "NonEmpty"; }
if header :matches "subject" "L*ch*" { fileinto "Lunchish"; }
if address :is :all "cc" "dave@example.org" { fileinto "Dave"; }
