// Postroom web UI: the little JavaScript the pages use. No inline scripts (the CSP forbids them).
"use strict";

// A button with data-confirm asks before its form is sent (deleting, turning things off).
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.getAttribute("data-confirm"))) {
    event.preventDefault();
  }
});

// fetch() for the pages' own API calls: the session cookie goes by itself, the CSRF token
// from the page's <meta name="csrf-token"> in the X-CSRF-Token header.
window.postroomApi = function (method, path, body) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  var headers = { "X-CSRF-Token": meta ? meta.content : "" };
  var init = { method: method, headers: headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(path, init).then(function (response) {
    if (response.status === 204) { return null; }
    return response.json().then(function (data) {
      if (!response.ok) { throw Object.assign(new Error(data.error || response.statusText), data); }
      return data;
    });
  });
};
