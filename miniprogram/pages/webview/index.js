// A printable e-bill or e-form (a signed link of the server, /e/…) in a web-view: its origin
// must be a business domain (业务域名) of the mini-program (README).
const config = require('../../config');

Component({
  data: { src: '' },
  methods: {
    onLoad(query) {
      const src = decodeURIComponent(query.url || '');
      // only the server's own pages: a link from elsewhere is not opened
      this.setData({ src: src.startsWith(`${config.apiOrigin}/`) ? src : '' });
    },
  },
});
