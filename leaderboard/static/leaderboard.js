// lsmia-bench leaderboard: sort a table by clicking its column headers, filter its rows.
// Plain JavaScript on the page's own HTML (no data fetched), so it works from file:// too.
(function () {
  "use strict";

  function cellKey(row, index, numeric) {
    var cell = row.cells[index];
    if (!cell) { return null; }
    var raw = cell.getAttribute("data-value");
    if (raw === null || raw === "") { return null; }
    if (numeric) {
      var number = parseFloat(raw);
      return isNaN(number) ? null : number;
    }
    return raw.toLowerCase();
  }

  function sortTable(table, header) {
    var headers = table.tHead.rows[table.tHead.rows.length - 1].cells;
    var index = Array.prototype.indexOf.call(headers, header);
    var numeric = header.getAttribute("data-type") === "number";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, position) {
      return { row: row, key: cellKey(row, index, numeric), position: position };
    });
    rows.sort(function (a, b) {
      // Empty cells always last; equal keys keep their order (stable).
      if (a.key === null || b.key === null) {
        if (a.key === b.key) { return a.position - b.position; }
        return a.key === null ? 1 : -1;
      }
      var order = a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
      return (ascending ? order : -order) || a.position - b.position;
    });
    rows.forEach(function (item) { body.appendChild(item.row); });
  }

  function showAllColumns(table, all) {
    table.classList.toggle("compact", !all);
    // Both header rows of groups: the threat models' and the attacks' (and others').
    Array.prototype.forEach.call(table.tHead.querySelectorAll("tr.groups > th"), function (group) {
      var span = group.getAttribute(all ? "data-span" : "data-compact-span");
      if (span && span !== "0") { group.colSpan = parseInt(span, 10); }
    });
  }

  function applyFilter(table) {
    var text = document.querySelector('input.filter[data-table="' + table.id + '"]');
    var hide = document.querySelector('input.hide-failed[data-table="' + table.id + '"]');
    var query = text ? text.value.trim().toLowerCase() : "";
    var shown = 0;
    var rows = table.tBodies[0].rows;
    Array.prototype.forEach.call(rows, function (row) {
      var visible = (!query || row.textContent.toLowerCase().indexOf(query) !== -1) &&
        !(hide && hide.checked && row.getAttribute("data-status") === "failed");
      row.hidden = !visible;
      if (visible) { shown += 1; }
    });
    var counter = document.querySelector('.shown[data-table="' + table.id + '"]');
    if (counter) { counter.textContent = shown + " of " + rows.length + " entries shown"; }
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.board"), function (table) {
    var headers = table.tHead.rows[table.tHead.rows.length - 1].cells;
    Array.prototype.forEach.call(headers, function (header) {
      var button = header.querySelector("button");
      if (button) {
        button.addEventListener("click", function () { sortTable(table, header); });
      }
    });
    var toggle = document.querySelector('input.all-columns[data-table="' + table.id + '"]');
    if (toggle) {
      toggle.addEventListener("change", function () { showAllColumns(table, toggle.checked); });
      showAllColumns(table, toggle.checked);
    }
    Array.prototype.forEach.call(
      document.querySelectorAll('input.filter[data-table="' + table.id + '"], ' +
                                'input.hide-failed[data-table="' + table.id + '"]'),
      function (control) {
        control.addEventListener("input", function () { applyFilter(table); });
        control.addEventListener("change", function () { applyFilter(table); });
      });
    applyFilter(table);
  });
}());
