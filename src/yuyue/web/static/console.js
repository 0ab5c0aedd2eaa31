// Console behaviour that needs a script (the pages work without it): keyboard shortcuts on elements
// marked data-key="n" (pressed when focus is not in a text field), and confirmation prompts on forms
// marked data-confirm.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT" || target.isContentEditable)) return;
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    var control = document.querySelector('[data-key="' + key + '"]:not([disabled])');
    if (!control) return;
    event.preventDefault();
    control.click();
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
// Print buttons (the ticket page): shown only when a script can print.
(function () {
  "use strict";
  var buttons = document.querySelectorAll("[data-print]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].hidden = false;
    buttons[i].addEventListener("click", function () { window.print(); });
  }
})();
// Live parts of the hall pages (counter screen, desk): an element with data-live-hall="<hall id>"
// subscribes to the hall's queue events; on a call or change the page (data-live-url, the page's
// GET address, also after a form was posted to another one) is fetched again and each
// element marked data-live-part (by id) is swapped for its fresh copy. Forms and revealed details
// outside those parts stay as they are. Without a script the page is simply reloaded by the clerk.
(function () {
  "use strict";
  var marker = document.querySelector("[data-live-hall]");
  if (!marker || !window.EventSource || !window.fetch || !window.DOMParser) return;
  var hall = marker.getAttribute("data-live-hall");
  var timer = null;
  function refresh() {
    var url = marker.getAttribute("data-live-url") || window.location.pathname;
    window.fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new window.DOMParser().parseFromString(html, "text/html");
        var parts = document.querySelectorAll("[data-live-part]");
        for (var i = 0; i < parts.length; i++) {
          var next = parts[i].id && fresh.getElementById(parts[i].id);
          if (next) parts[i].replaceWith(document.importNode(next, true));
        }
      })
      .catch(function () { /* the next event tries again */ });
  }
  function soon() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 300);
  }
  var opened = false;
  var source = new window.EventSource("/api/v1/halls/" + encodeURIComponent(hall) + "/queue/events");
  source.addEventListener("open", function () {
    marker.setAttribute("data-live", "on");
    if (opened) soon(); // a reconnect: whatever happened meanwhile
    opened = true;
  });
  source.addEventListener("call", soon);
  source.addEventListener("change", soon);
})();
// Sortable tables (issue 20): a table marked "sortable" gets a button in each column heading; a
// click orders the body rows by that column (data-sort of the cell when it has one, else its text;
// headings with data-type="number" compare as numbers, empty last), again to reverse. aria-sort tells
// assistive technology the order. Without a script the headings stay plain text, in the server's order.
(function () {
  "use strict";
  var tables = document.querySelectorAll("table.sortable");
  function value(row, index) {
    var c = row.cells[index];
    if (!c) return "";
    var given = c.getAttribute("data-sort");
    return given !== null ? given : c.textContent.trim();
  }
  function sortBy(table, index, numeric, button) {
    var heading = button.parentNode;
    var ascending = heading.getAttribute("aria-sort") !== "ascending";
    var headings = table.tHead.rows[0].cells;
    for (var h = 0; h < headings.length; h++) headings[h].removeAttribute("aria-sort");
    heading.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, index), y = value(b, index);
      if (numeric) {
        if (x === "" || y === "") return x === y ? 0 : (x === "" ? 1 : -1);
        return ascending ? Number(x) - Number(y) : Number(y) - Number(x);
      }
      return ascending ? x.localeCompare(y, "zh-CN") : y.localeCompare(x, "zh-CN");
    });
    for (var r = 0; r < rows.length; r++) body.appendChild(rows[r]);
  }
  for (var t = 0; t < tables.length; t++) {
    var table = tables[t];
    if (!table.tHead || !table.tBodies.length) continue;
    var cells = table.tHead.rows[0].cells;
    for (var i = 0; i < cells.length; i++) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      while (cells[i].firstChild) button.appendChild(cells[i].firstChild);
      cells[i].appendChild(button);
      button.addEventListener("click", (function (tbl, index, numeric, btn) {
        return function () { sortBy(tbl, index, numeric, btn); };
      })(table, i, cells[i].getAttribute("data-type") === "number", button));
    }
  }
})();
