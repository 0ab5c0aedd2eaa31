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
