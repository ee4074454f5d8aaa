(function () {
  document.documentElement.className += " js";
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.toggle") : null;
    if (!button) { return; }
    var table = button.closest("table");
    var open = button.getAttribute("aria-expanded") === "true";
    button.setAttribute("aria-expanded", open ? "false" : "true");
    button.textContent = open ? "\u25b8" : "\u25be";
    var closed = [];
    table.querySelectorAll('button.toggle[aria-expanded="false"]').forEach(function (b) {
      closed.push(b.getAttribute("data-node"));
    });
    table.querySelectorAll("tr[data-anc]").forEach(function (row) {
      var above = row.getAttribute("data-anc").split(" ");
      row.hidden = closed.some(function (id) { return above.indexOf(id) >= 0; });
    });
  });
})();
