// the page's own check: every image decoded (read back by the report test through
// Chromium's --dump-dom). Inline, so the page stays self-contained.
window.addEventListener('load',function(){var n=0;for(var i=0;i<document.images.length;i++){var im=document.images[i];if(!im.complete||im.naturalWidth===0){n++;}}document.body.setAttribute('data-broken-images',String(n));document.body.setAttribute('data-images',String(document.images.length));});
