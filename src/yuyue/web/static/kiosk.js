// Kiosk: the print button prints the ticket, and a page left alone goes back to the start page after
// `data-idle` seconds (the machine is shared: the next person must not see the last one's ticket).
// Any touch, click or key restarts the count. Without JavaScript staff press "回到首页".
(function () {
  "use strict";
  var button = document.querySelector("[data-print]");
  if (button) button.addEventListener("click", function () { window.print(); });
  var idle = parseInt(document.body.getAttribute("data-idle") || "0", 10);
  if (!idle) return;
  var timer = null;
  function restart() {
    if (timer) window.clearTimeout(timer);
    timer = window.setTimeout(function () { window.location.assign("/kiosk"); }, idle * 1000);
  }
  ["pointerdown", "keydown", "input"].forEach(function (name) {
    document.addEventListener(name, restart, { passive: true });
  });
  restart();
})();
