// Image upload with a progress bar: create the image record (form POST, JSON answer), then
// stream the file to /dashboard/images/<id>/file with XHR, whose upload events feed the bar.
(function () {
  var form = document.getElementById("image-upload");
  if (!form) return;
  var bar = document.getElementById("upload-progress");
  var status = document.getElementById("upload-status");
  var csrf = form.querySelector("input[name=csrf_token]").value;
  function fail(text) { status.textContent = text; status.className = "fault"; }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var file = document.getElementById("image-file").files[0];
    if (!file) { fail("Choose a file."); return; }
    var body = new URLSearchParams(new FormData(form));
    fetch(form.action, {method: "POST", body: body, credentials: "same-origin",
                        headers: {"X-CSRF-Token": csrf}})
      .then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
      .then(function (res) {
        if (res[0] !== 201) { fail(res[1].error || ("Error " + res[0])); return; }
        var xhr = new XMLHttpRequest();
        xhr.open("PUT", "/dashboard/images/" + res[1].id + "/file");
        xhr.setRequestHeader("Content-Type", "application/octet-stream");
        xhr.setRequestHeader("X-CSRF-Token", csrf);
        bar.hidden = false; bar.max = file.size || 1; bar.value = 0;
        xhr.upload.onprogress = function (e) {
          if (e.lengthComputable) { bar.max = e.total; bar.value = e.loaded; }
          status.textContent = "Uploading: " + e.loaded + " of " + file.size + " bytes";
        };
        xhr.onload = function () {
          if (xhr.status === 204) {
            bar.value = bar.max;
            status.textContent = "Uploaded " + file.size + " bytes. ";
            var link = document.createElement("a");
            link.href = "/dashboard/images"; link.id = "upload-done"; link.textContent = "Show it";
            status.appendChild(link);
          } else {
            var msg = "Error " + xhr.status;
            try { msg = JSON.parse(xhr.responseText).error || msg; } catch (e) { /* text */ }
            fail(msg);
          }
        };
        xhr.onerror = function () { fail("The upload failed (network error)."); };
        xhr.send(file);
      })
      .catch(function (e) { fail(String(e)); });
  });
})();
