require ["variables", "fileinto"];
set :lower :upperfirst "who" "${0}";
if address :matches "from" "*@*" { set :lower "dom" "${2}"; set :upperfirst "user" "${1}"; fileinto "From/${dom}/${user}"; }
