() => {
  // Esc stops the reply being written on the Chat tab (as its Stop button does; idle, it does nothing).
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    const stop = document.querySelector('#stop');
    if (stop && stop.offsetParent !== null) stop.click();
  });
  // The model banner's close button hides it for the rest of this browser session.
  if (sessionStorage.getItem('localchat.banner-closed') === '1') document.body.classList.add('banner-closed');
  document.addEventListener('click', (e) => {
    if (!e.target.closest || !e.target.closest('#model-banner .banner-close')) return;
    sessionStorage.setItem('localchat.banner-closed', '1');
    document.body.classList.add('banner-closed');
  });
  // Phones: the chat list is a drawer opened by the ☰ button (ui/layout.py); opening a chat, starting a
  // new one, the backdrop or Esc closes it.
  const phone = window.matchMedia('(max-width: 640px)');
  const drawer = (open) => document.body.classList.toggle('drawer-open', open && phone.matches);
  phone.addEventListener('change', () => drawer(false));
  document.addEventListener('click', (e) => {
    if (!e.target.closest) return;
    if (e.target.closest('#drawer-toggle')) { drawer(!document.body.classList.contains('drawer-open')); return; }
    if (e.target.closest('#drawer-backdrop')) { drawer(false); return; }
    if (e.target.closest('#chat-drawer .chat-open, #chat-drawer #new-chat')) drawer(false);
  });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') drawer(false); });
}
