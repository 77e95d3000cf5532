// tidings dashboard: live refresh without a framework. Every element marked data-live is
// re-fetched from the same page every few seconds and swapped in place, so the numbers the
// server renders stay current. No build step, no CDN.
(function () {
  "use strict";
  var every = Number(document.body.getAttribute("data-refresh") || "2000");
  var stamp = document.getElementById("refreshed");
  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live": "1" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var next = fresh.getElementById(el.id);
          if (next) { el.innerHTML = next.innerHTML; }
        });
        if (stamp) { stamp.textContent = "updated " + new Date().toLocaleTimeString(); }
      })
      .catch(function (err) { if (stamp) { stamp.textContent = "refresh failed: " + err.message; } })
      .finally(function () { window.setTimeout(refresh, every); });
  }
  window.setTimeout(refresh, every);
  // Buttons with data-post (redrive, purge, delete) send their JSON body to the API (POST, or
  // the data-method given), say the answer and reload; delegated, so buttons swapped in by
  // the refresh work too.
  function done(j) {
    if (j.ids) { return j.count + " done: " + j.ids.join(", "); }
    if (j.groups && j.id) { return "deleted " + j.id + " (settled for " + (j.groups.join(", ") || "no group") + ")"; }
    if (j.groups) { return "purged " + j.count + " message(s)"; }
    return "done";
  }
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest ? ev.target.closest("button[data-post]") : null;
    if (!button) { return; }
    var ask = button.getAttribute("data-confirm");
    if (ask && !window.confirm(ask)) { return; }
    var result = document.getElementById("dl-result");
    button.disabled = true;
    fetch(button.getAttribute("data-post"), {
      method: button.getAttribute("data-method") || "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: button.getAttribute("data-body") || "{}"
    })
      .then(function (r) { return r.json().then(function (j) { return [r.ok, j]; }); })
      .then(function (answer) {
        var ok = answer[0], j = answer[1];
        if (result) {
          result.textContent = ok ? done(j) : j.message;
          result.className = ok ? "" : "alarm";
        }
        if (ok) { window.setTimeout(function () { window.location.reload(); }, 500); }
      })
      .catch(function (err) { if (result) { result.textContent = err.message; } })
      .finally(function () { button.disabled = false; });
  });
})();
