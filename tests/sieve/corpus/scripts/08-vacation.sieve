require "vacation";
vacation :days 14 :subject "Away" :addresses ["bob@example.org", "bob+invoices@example.org"] "I am away until the 20th.";
