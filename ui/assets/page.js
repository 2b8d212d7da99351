() => {
  // Esc stops the reply being written on the Chat tab (as its Stop button does; idle, it does nothing).
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    const stop = document.querySelector('#stop');
    if (stop && stop.offsetParent !== null) stop.click();
  });
}
