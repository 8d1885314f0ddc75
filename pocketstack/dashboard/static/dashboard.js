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
// <input type=file data-into=ID>: the chosen file's text goes into the textarea #ID (a
// template read in the browser; the form posts text, no multipart upload).
document.addEventListener("change", function (ev) {
  var t = ev.target;
  if (!t || !t.dataset || !t.dataset.into || !t.files || !t.files[0]) return;
  var reader = new FileReader();
  reader.onload = function () { document.getElementById(t.dataset.into).value = reader.result; };
  reader.readAsText(t.files[0]);
});
