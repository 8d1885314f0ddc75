// pocketstack serial console page: bytes both ways over a "binary" WebSocket; a resize is
// sent as the text frame {"resize": [cols, rows]} (the proxy tells the container's pty).
(function () {
  "use strict";
  var params = new URLSearchParams(window.location.search);
  var path = params.get("path") || "";
  var status = document.getElementById("status");
  if (!path) { status.textContent = "no console path in the URL"; return; }
  var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  var url = scheme + window.location.host + "/" + path.replace(/^\/+/, "");
  var term = new window.Terminal({ convertEol: false, cursorBlink: true, scrollback: 5000 });
  var fit = new window.FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("terminal"));
  fit.fit();
  var ws = new WebSocket(url, ["binary"]);
  ws.binaryType = "arraybuffer";
  var encoder = new TextEncoder();
  function sendResize() {
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ resize: [term.cols, term.rows] }));
    }
  }
  ws.onopen = function () { status.textContent = "connected"; sendResize(); term.focus(); };
  ws.onmessage = function (ev) {
    term.write(typeof ev.data === "string" ? ev.data : new Uint8Array(ev.data));
  };
  ws.onclose = function (ev) {
    status.textContent = "disconnected" + (ev.reason ? ": " + ev.reason : "");
  };
  term.onData(function (data) {
    if (ws.readyState === WebSocket.OPEN) { ws.send(encoder.encode(data)); }
  });
  term.onResize(sendResize);
  window.addEventListener("resize", function () { fit.fit(); });
})();
