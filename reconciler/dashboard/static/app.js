// gitfirm dashboard: live updates. The pages work without this file; with it, a page
// listens to /ui/events and, when the state version moves, fetches itself again and
// swaps in the new <main>. No inline script anywhere (the CSP forbids it).
(function () {
  "use strict";
  if (!window.EventSource || !window.fetch || !window.DOMParser) { return; }
  var badge = document.getElementById("live");
  var busy = false;
  var again = false;

  function current() {
    var main = document.getElementById("main");
    return main ? main.getAttribute("data-version") : null;
  }

  function mark(text, on) {
    if (!badge) { return; }
    badge.textContent = text;
    badge.className = on ? "live on" : "live";
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main");
        var main = document.getElementById("main");
        if (fresh && main) {
          main.replaceWith(document.adoptNode(fresh));
          document.body.setAttribute("data-version", fresh.getAttribute("data-version") || "");
        }
      })
      .catch(function () { mark("offline", false); })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  var source = new EventSource("/ui/events");
  source.addEventListener("open", function () { mark("live", true); });
  source.addEventListener("error", function () { mark("reconnecting", false); });
  source.addEventListener("update", function (event) {
    var data = JSON.parse(event.data);
    mark("live", true);
    if (String(data.version) !== current()) { refresh(); }
  });
})();
