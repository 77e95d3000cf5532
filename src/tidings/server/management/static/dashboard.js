// tidings dashboard: live refresh without a framework. An element with data-events (the
// Overview's cards) follows the broker's Server-Sent Events (/api/v1/events, one event a
// second) and puts each value in its data-key place; if the stream fails, the page falls
// back to polling: every element marked data-live is re-fetched from the same page every
// few seconds and swapped in place. No build step, no CDN.
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
  function fmt(n, unit, digits) {
    return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) + unit;
  }
  function apply(el, o) {
    var values = Object.assign({ backlog: o.ready + o.in_flight }, o);
    el.querySelectorAll("[data-key]").forEach(function (b) {
      var v = values[b.getAttribute("data-key")];
      if (typeof v === "number") { b.textContent = fmt(v, b.getAttribute("data-unit") || "", Number(b.getAttribute("data-digits") || "0")); }
    });
    el.querySelectorAll("[data-alarm]").forEach(function (card) {
      card.hidden = !(o.alarms && o.alarms[card.getAttribute("data-alarm")]);
    });
  }
  function follow(el) {
    var source = new EventSource(el.getAttribute("data-events"));
    source.addEventListener("overview", function (ev) {
      apply(el, JSON.parse(ev.data));
      if (stamp) { stamp.textContent = "live " + new Date().toLocaleTimeString(); }
    });
    source.onerror = function () {  // closed, refused or cut: poll instead
      source.close();
      if (stamp) { stamp.textContent = "live updates stopped: polling"; }
      window.setTimeout(refresh, every);
    };
  }
  var streamed = document.querySelector("[data-events]");
  if (streamed && window.EventSource) { follow(streamed); } else { window.setTimeout(refresh, every); }
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
