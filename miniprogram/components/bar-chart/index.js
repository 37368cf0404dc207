// A bar chart on a canvas of type 2d: small on purpose (a chart library is hundreds of kB of a
// mini-program's 2 MB package, for one kind of chart). The drawing is in layout.js; here the
// canvas is found, sized to the device's pixel ratio and drawn whenever `bars` changes.
const { layout, draw } = require('./layout');

Component({
  properties: {
    bars: { type: Array, value: [] }, // [{label, value, pale}]
    unit: { type: String, value: 'kWh' },
  },
  data: { count: 0, measured: 0 },
  observers: {
    bars(bars) {
      this.setData({ count: bars.length, measured: bars.filter((b) => b.value > 0).length });
      this.paint();
    },
  },
  lifetimes: {
    ready() { this.paint(); },
  },
  methods: {
    paint() {
      if (typeof this.createSelectorQuery !== 'function') return;
      const query = this.createSelectorQuery();
      if (!query || typeof query.select !== 'function') return;
      query.select('#canvas').fields({ node: true, size: true }).exec((res) => {
        const found = res && res[0];
        if (!found || !found.node) return; // not laid out yet (or no canvas: the test renderer)
        const canvas = found.node;
        const dpr = (wx.getWindowInfo ? wx.getWindowInfo() : wx.getSystemInfoSync()).pixelRatio || 1;
        canvas.width = found.width * dpr;
        canvas.height = found.height * dpr;
        const ctx = canvas.getContext('2d');
        ctx.scale(dpr, dpr);
        draw(ctx, layout(this.data.bars, found.width, found.height), found.width, found.height, this.data.unit);
      });
    },
  },
});
