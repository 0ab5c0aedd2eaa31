// Kiosk: the print button prints the ticket (the page works without it: staff print from the desk).
(function () {
  "use strict";
  var button = document.querySelector("[data-print]");
  if (button) button.addEventListener("click", function () { window.print(); });
})();
