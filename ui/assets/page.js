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
}
