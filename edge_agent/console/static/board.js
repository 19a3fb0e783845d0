// Board page: a click on a connector's picture shows its reference, crop and heatmap large,
// side by side; Esc, the Close button or a click outside closes them.
"use strict";

(function () {
  const zoom = document.getElementById("zoom");
  if (!zoom) return;
  document.addEventListener("click", (event) => {
    const picture = event.target.closest("img.zoomable");
    if (picture) {
      const card = picture.closest(".conn");
      document.getElementById("zoom-title").textContent = card.querySelector("header b").textContent;
      const pics = document.getElementById("zoom-pics");
      pics.replaceChildren(...[...card.querySelectorAll(".pair figure")].map((f) => f.cloneNode(true)));
      zoom.showModal();
    } else if (event.target === zoom) {
      zoom.close();
    }
  });
})();
