// The API reference (Swagger UI, served by this server: no CDN). Calls made from it use the session
// cookie, so a change carries the page's CSRF token like every other page of the UI.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  window.SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    requestInterceptor: (request) => {
      request.headers["X-CSRF-Token"] = csrf;
      return request;
    },
  });
});
