// js_on_load of the hidden #version-nav (ui/chat_versions.py): a click on ‹ or › under a message
// (ui/chat_format.py version_nav draws them) becomes this element's 'click' event {at, to, id}. The Chatbot
// keeps no data- attributes in a message, so the target travels in class names: ver-at-I ver-to-N ver-id-HEX.
if (!window.__versionNavWired) {
  window.__versionNavWired = true;
  document.addEventListener('click', (e) => {
    const button = e.target.closest && e.target.closest('#chatbot button.ver-nav');
    if (!button) return;
    e.preventDefault();
    e.stopPropagation();
    if (button.classList.contains('ver-off')) return;
    const part = (prefix) => [...button.classList].find((c) => c.startsWith(prefix))?.slice(prefix.length);
    const at = parseInt(part('ver-at-'), 10), to = parseInt(part('ver-to-'), 10), id = part('ver-id-') || '';
    if (Number.isInteger(at) && Number.isInteger(to)) trigger('click', {at: at, to: to, id: id});
  }, true);
}
