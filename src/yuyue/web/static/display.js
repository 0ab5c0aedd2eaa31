// The hall's big screen (/halls/{hall}/display), live over Server-Sent Events:
// /api/v1/halls/{hall}/queue/events sends `queue` (a snapshot on connect), `call` (number and
// counter), `change` and `closure` (today's closed state, on connect and whenever a closure for
// today is set or removed: the 今日闭厅 notice appears or goes at once); after a call or change,
// and on every reconnect, the screen refetches /api/v1/halls/{hall}/queue. A call is written into the aria-live region ("请 A001 号到 3号窗口办理")
// and, with ?voice=1, spoken by speechSynthesis. Without JavaScript the page refreshes itself.
(function () {
  "use strict";
  var hall = document.body.getAttribute("data-hall");
  if (!hall) return;
  var base = "/api/v1/halls/" + encodeURIComponent(hall);
  var voice = new URLSearchParams(window.location.search).get("voice") === "1" && "speechSynthesis" in window;
  var lastCall = null; // {number, call_number, counter}
  var flashTimer = null;

  function byId(id) { return document.getElementById(id); }

  function sentence(callNumber, counter) {
    return "请 " + callNumber + " 号到 " + (counter || "窗口") + " 办理";
  }

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text || "";
    row.appendChild(td);
  }

  function showLatest(call) {
    var box = byId("latest");
    box.textContent = "";
    var number = document.createElement("span");
    var counter = document.createElement("span");
    if (call) {
      number.className = "latest-number";
      number.textContent = call.call_number;
      counter.className = "latest-counter";
      counter.textContent = call.counter || "";
      box.appendChild(number);
      box.appendChild(counter);
    } else {
      number.className = "latest-empty";
      number.textContent = "请留意叫号";
      box.appendChild(number);
    }
  }

  function render(queue) {
    var serving = queue.serving || [];
    var waiting = queue.waiting || [];
    var current = null;
    if (lastCall) {
      for (var i = 0; i < serving.length; i++) {
        if (serving[i].number === lastCall.number) current = serving[i];
      }
    }
    if (!current && serving.length) current = serving[serving.length - 1];
    showLatest(current);
    var body = byId("serving");
    body.textContent = "";
    for (var j = serving.length - 1; j >= 0; j--) {
      var row = document.createElement("tr");
      cell(row, serving[j].call_number);
      cell(row, serving[j].counter);
      body.appendChild(row);
    }
    var list = byId("waiting");
    list.textContent = "";
    var shown = Math.min(waiting.length, Number(list.getAttribute("data-max") || 8));
    for (var k = 0; k < shown; k++) {
      var item = document.createElement("li");
      item.textContent = waiting[k].call_number;
      list.appendChild(item);
    }
    byId("waiting-total").textContent = String(waiting.length);
    byId("waiting-empty").hidden = waiting.length > 0;
  }

  function refetch() {
    if (!window.fetch) return;
    window.fetch(base + "/queue", { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (queue) { if (queue) render(queue); })
      .catch(function () { /* the next event or reconnect tries again */ });
  }

  function announce(call) {
    lastCall = call;
    var text = sentence(call.call_number, call.counter);
    byId("announce").textContent = text;
    showLatest(call);
    var box = byId("latest");
    box.classList.remove("flash");
    void box.offsetWidth; // restart the highlight
    box.classList.add("flash");
    window.clearTimeout(flashTimer);
    flashTimer = window.setTimeout(function () { box.classList.remove("flash"); }, 6000);
    if (voice) {
      var utterance = new window.SpeechSynthesisUtterance(text);
      utterance.lang = "zh-CN";
      utterance.rate = 0.9;
      window.speechSynthesis.speak(utterance); // queued: two calls are both said
    }
  }

  function closure(day) {
    // the same notice the page renders for a closed day (console/templates/hall/display.html)
    var box = document.querySelector(".display-closed");
    if (!day.closed) {
      if (box) box.parentNode.removeChild(box);
      return;
    }
    if (!box) {
      box = document.createElement("section");
      box.className = "display-closed";
      box.setAttribute("role", "alert");
      box.setAttribute("data-closed", "1");
      var title = document.createElement("h2");
      title.textContent = "今日闭厅";
      box.appendChild(title);
      box.appendChild(document.createElement("p"));
      document.body.insertBefore(box, byId("main"));
    }
    box.querySelector("p").textContent = (day.note || "今天不是工作日") + "：今天不再取号。已取号的市民请留意叫号。";
  }

  function state(text) {
    var marker = byId("display-state");
    marker.textContent = text;
    marker.hidden = !text;
  }

  if (!window.EventSource) {
    window.setInterval(function () { window.location.reload(); }, 10000);
    return;
  }

  var connected = false;
  function connect() {
    var source = new window.EventSource(base + "/queue/events");
    source.addEventListener("open", function () {
      state("");
      document.body.setAttribute("data-live", "on");
      if (connected) refetch(); // a reconnect: whatever happened meanwhile
      connected = true;
    });
    source.addEventListener("queue", function (event) { render(JSON.parse(event.data)); });
    source.addEventListener("call", function (event) {
      announce(JSON.parse(event.data));
      refetch();
    });
    source.addEventListener("change", refetch);
    source.addEventListener("closure", function (event) { closure(JSON.parse(event.data)); });
    source.addEventListener("error", function () {
      state("连接中断，正在重连…");
      document.body.setAttribute("data-live", "off");
      if (source.readyState === window.EventSource.CLOSED) {
        source.close(); // the browser gave up (e.g. the server answered an error): try again later
        window.setTimeout(connect, 5000);
      }
    });
  }
  connect();
})();
