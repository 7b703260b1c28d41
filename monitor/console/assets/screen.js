// The big screen's full-screen button (the page works without it: F11).
document.addEventListener("DOMContentLoaded", function () {
  var b = document.getElementById("fullscreen");
  if (!b || !document.documentElement.requestFullscreen) { if (b) b.hidden = true; return; }
  b.addEventListener("click", function () { document.documentElement.requestFullscreen(); });
});
