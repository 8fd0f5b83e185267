// ebbflow web UI: live updates over server-sent events. Each live region
// names the event kinds it shows (data-live), optionally the service it is
// about (data-entity), and the URL of its fragment (data-fragment); on a
// matching update the fragment is fetched again and swapped in, at most
// once every two seconds per region, never while focus is inside it.
(function () {
  "use strict";
  if (!window.EventSource) { return; }
  var status = document.getElementById("live");
  var regions = Array.prototype.slice.call(document.querySelectorAll("[data-live]"));
  var updates = 0;
  function say(text, on) {
    if (!status) { return; }
    status.textContent = text;
    status.classList.toggle("on", !!on);
  }
  function refresh(el) {
    if (el.dataset.busy) { el.dataset.again = "1"; return; }
    el.dataset.busy = "1";
    setTimeout(function () {
      if (el.contains(document.activeElement) && document.activeElement !== document.body) {
        delete el.dataset.busy; el.dataset.again = ""; setTimeout(function () { refresh(el); }, 2000); return;
      }
      fetch(el.dataset.fragment, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
        .then(function (r) { if (!r.ok) { throw new Error(r.status + " " + r.statusText); } return r.text(); })
        .then(function (html) {
          el.innerHTML = html;
          updates++;
          document.body.dataset.updates = String(updates);
          say("live updates: on (" + updates + " refreshed)", true);
        })
        .catch(function (e) { say("live updates: fragment failed: " + e.message, false); })
        .then(function () {
          delete el.dataset.busy;
          if (el.dataset.again) { el.dataset.again = ""; refresh(el); }
        });
    }, 2000);
  }
  var es = new EventSource("/events");
  es.onopen = function () { say("live updates: on", true); };
  es.onerror = function () { say("live updates: reconnecting", false); };
  es.addEventListener("update", function (ev) {
    var u;
    try { u = JSON.parse(ev.data); } catch (e) { return; }
    regions.forEach(function (el) {
      var kinds = el.dataset.live.split(" ");
      if (kinds.indexOf(u.kind) < 0) { return; }
      if (el.dataset.entity && u.entity && el.dataset.entity !== u.entity) { return; }
      refresh(el);
    });
  });
})();
