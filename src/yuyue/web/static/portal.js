// Progressive enhancement only: every page works without this file.
// 1. The hall finder's district menu submits itself when changed.
// 2. A cancel or change form asks once more before it is sent twice (double tap on a slow phone).
// 3. Buttons marked data-print print the page (the receipt).
document.addEventListener("DOMContentLoaded", () => {
  const under = document.getElementById("under");
  if (under && under.form) {
    under.addEventListener("change", () => under.form.requestSubmit());
  }
  for (const form of document.querySelectorAll("form[method=post]")) {
    form.addEventListener("submit", (event) => {
      if (form.dataset.sent === "1") {
        event.preventDefault();
        return;
      }
      form.dataset.sent = "1";
    });
  }
  for (const button of document.querySelectorAll("[data-print]")) {
    button.hidden = false; // without JavaScript the browser's own print menu is the way
    button.addEventListener("click", () => window.print());
  }
});
