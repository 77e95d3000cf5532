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
})();
