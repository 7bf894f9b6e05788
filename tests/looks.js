// What a user would see as cut off, broken, overlapping or shouting on the page as it stands: one line per problem.
() => {
  const problems = [];
  const shown = (el) => {
    if (!el.isConnected) return false;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) return false;
    const style = getComputedStyle(el);
    return style.visibility !== "hidden" && style.display !== "none" && style.opacity !== "0" &&
      el.checkVisibility({opacityProperty: true});
  };
  const name = (el) => {
    const owner = el.closest("[id]:not([id=''])");
    const text = (el.value || el.innerText || el.getAttribute("aria-label") || "").trim().replace(/\s+/g, " ");
    return `${el.tagName.toLowerCase()} "${text.slice(0, 60)}"` + (owner ? ` in #${owner.id}` : "");
  };
  const overlap = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const textBox = (el) => {
    const box = {left: Infinity, right: -Infinity};
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (!node.data.trim() || node.parentElement.closest(".icon")) continue;  // an accordion's arrow turns
      const range = document.createRange();
      range.selectNodeContents(node);
      const r = range.getBoundingClientRect();
      if (r.width === 0) continue;
      box.left = Math.min(box.left, r.left);
      box.right = Math.max(box.right, r.right);
    }
    return box;
  };
  const canvas = document.createElement("canvas").getContext("2d");
  const textWidth = (input) => {
    const style = getComputedStyle(input);
    canvas.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    return canvas.measureText(input.value).width;
  };

  // Text cut off by its own box: a box that clips (or an input) whose content is wider than it.
  const texts = ["[data-testid='block-info']", "[data-testid='block-label']", "label span", "button", "[role='tab']",
                 "th .header-content", "th span.header"];
  for (const el of document.querySelectorAll(texts.join(","))) {
    if (!shown(el) || !el.innerText.trim()) continue;
    // A button's own padding and icons may stick out harmlessly; its words must not.
    const clips = el.tagName !== "BUTTON" && getComputedStyle(el).overflowX !== "visible";
    const box = el.getBoundingClientRect(), text = textBox(el);
    if ((clips && el.scrollWidth > el.clientWidth + 1) || text.right > box.right + 1 || text.left < box.left - 1)
      problems.push(`cut off: ${name(el)} (${el.scrollWidth}px of text in ${el.clientWidth}px)`);
  }
  // A dropdown's value: wider than its box, or running under its arrow.
  for (const input of document.querySelectorAll("input[role='combobox'], input[role='listbox']")) {
    if (!shown(input) || !input.value) continue;
    const style = getComputedStyle(input), box = input.getBoundingClientRect();
    const right = box.left + parseFloat(style.paddingLeft) + textWidth(input);
    const room = box.right - parseFloat(style.paddingRight);
    const arrow = input.parentElement.querySelector(".icon-wrap, .dropdown-arrow");
    if (input.scrollWidth > input.clientWidth + 1 || right > room + 1)
      problems.push(`cut off: ${name(input)} (${Math.round(right - box.left)}px of text in ${Math.round(room - box.left)}px)`);
    else if (arrow && shown(arrow) && right > arrow.getBoundingClientRect().left + 1)
      problems.push(`under its arrow: ${name(input)}`);
  }
  // A header whose text breaks inside a word: some word of it spans more than one line.
  for (const th of document.querySelectorAll("th")) {
    if (!shown(th)) continue;
    const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const match of node.data.matchAll(/\S+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
        if (tops.size > 1) problems.push(`broken word: "${match[0]}" in header ${name(th)}`);
      }
    }
  }
  // A table wider than its box: its last columns run off the right edge (a user must scroll sideways to read them).
  for (const viewport of document.querySelectorAll(".virtual-table-viewport")) {
    if (shown(viewport) && viewport.scrollWidth > viewport.clientWidth + 1)
      problems.push(`past the right edge: table ${name(viewport.closest(".block").querySelector(".label p, [data-testid='block-label']") || viewport)} (${viewport.scrollWidth}px in ${viewport.clientWidth}px)`);
  }
  // Axis labels of a plot drawn on top of each other ("1,5501,600").
  for (const axis of document.querySelectorAll(".vega-embed .role-axis")) {
    const labels = [...axis.querySelectorAll(".role-axis-label text")].filter(shown);
    for (let i = 1; i < labels.length; i++) {
      const a = labels[i - 1].getBoundingClientRect(), b = labels[i].getBoundingClientRect();
      if (overlap(a, b)) problems.push(`axis labels collide: "${labels[i - 1].textContent}" and "${labels[i].textContent}"`);
    }
  }
  // Plot text outside its box: an axis title below the bottom edge is cut off.
  for (const text of document.querySelectorAll(".vega-embed svg text")) {
    const block = text.closest(".block");
    if (shown(text) && text.textContent.trim() && text.getBoundingClientRect().bottom > block.getBoundingClientRect().bottom + 1)
      problems.push(`cut off: plot text "${text.textContent}" below its box`);
  }
  // A chat's label drawn over its messages: the label must sit above the scrolling area, not inside it.
  for (const chat of document.querySelectorAll(".block [role='log']")) {
    const label = chat.closest(".block").querySelector("[data-testid='block-label']");
    if (label && shown(chat) && shown(label) && overlap(label.getBoundingClientRect(), chat.getBoundingClientRect()))
      problems.push(`label over the messages: ${name(label)}`);
  }
  // Empty components that shout: an empty box kept on screen, a drop zone in a table.
  for (const empty of document.querySelectorAll(".block > .empty")) {
    if (shown(empty)) problems.push(`empty box shown: ${name(empty.closest(".block").querySelector("[data-testid='block-label']") || empty)}`);
  }
  for (const el of document.querySelectorAll(".table-wrap *")) {
    if (el.children.length === 0 && /Drop CSV or TSV/.test(el.textContent) && shown(el)) problems.push(`drop zone shown: ${name(el)}`);
  }
  if (document.documentElement.scrollWidth > document.documentElement.clientWidth + 1)
    problems.push(`the page scrolls sideways (${document.documentElement.scrollWidth}px in ${document.documentElement.clientWidth}px)`);
  return [...new Set(problems)];
}
