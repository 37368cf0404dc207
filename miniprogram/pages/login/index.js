// the login and binding page: its logic is in spec.js, shared with pages/bind/link
const { page } = require('../../utils/page');

page(require('./spec'));
