// pocketstack dashboard: the little behaviour that is not htmx (no inline script: CSP).
document.addEventListener("change", function (ev) {
  var t = ev.target;
  if (t && t.classList && t.classList.contains("autosubmit") && t.form) t.form.submit();
});
document.addEventListener("submit", function (ev) {
  var f = ev.target, b = ev.submitter;
  var ask = (f && f.classList && f.classList.contains("confirm")) ||
            (b && b.classList && b.classList.contains("confirm"));
  if (ask && !window.confirm("Delete it?")) ev.preventDefault();
}, true);
