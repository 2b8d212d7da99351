// js_on_load of the chat list (ui/chat_list.py renders the rows): a row opens its chat, ✎ renames it in
// place (Enter or leaving the field saves, Esc cancels), 🗑 asks before deleting. Listeners sit on
// `element`, which survives every re-render of the rows; the guard keeps them from being added twice.
if (!element.dataset.wired) {
  element.dataset.wired = '1';
  const finish = (row, input, save) => {
    if (input.dataset.done) return;
    input.dataset.done = '1';
    const title = input.value.trim();
    input.remove();
    row.classList.remove('renaming');
    const old = row.querySelector('.chat-title')?.textContent || '';
    if (save && title && title !== old) {
      row.querySelector('.chat-title').textContent = title;
      trigger('submit', {id: row.dataset.id, title: title});
    }
    row.querySelector('.chat-open')?.focus();
  };
  const rename = (row) => {
    if (row.querySelector('input.chat-rename')) return;
    const input = document.createElement('input');
    input.className = 'chat-rename';
    input.maxLength = 200;
    input.value = row.querySelector('.chat-title')?.textContent || '';
    input.setAttribute('aria-label', row.querySelector('[data-act=rename]')?.getAttribute('aria-label') || '');
    row.classList.add('renaming');
    row.prepend(input);
    input.focus();
    input.select();
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') { e.preventDefault(); finish(row, input, true); }
      else if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); finish(row, input, false); }
    });
    input.addEventListener('blur', () => finish(row, input, true));
  };
  element.addEventListener('click', (e) => {
    const button = e.target.closest && e.target.closest('button[data-act]');
    if (!button || !element.contains(button)) return;
    const row = button.closest('.chat-row');
    if (!row) return;
    const act = button.dataset.act;
    if (act === 'rename') { rename(row); return; }
    trigger('click', {action: act, id: row.dataset.id});
  });
}
