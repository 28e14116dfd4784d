// Short notices in a corner: errors stay until dismissed, the rest fade out.

/** Shows `text`; level is "ok", "warn" or "error". */
export function notify(text, level = "ok") {
  const box = document.getElementById("toasts");
  const toast = document.createElement("div");
  toast.className = `toast toast-${level}`;
  toast.setAttribute("role", level === "error" ? "alert" : "status");
  const message = document.createElement("span");
  message.className = "toast-text";
  message.textContent = text;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "quiet";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "✕";
  close.addEventListener("click", () => toast.remove());
  toast.append(message, close);
  box.append(toast);
  while (box.children.length > 5) box.firstElementChild.remove();
  if (level !== "error") setTimeout(() => toast.remove(), 5000);
}
