// pages/bind/link?code=… — where the official account's bot sends a user to link the two apps
// (bot/owner.py LINK_PAGE): the login page with the code filled in
const { page } = require('../../utils/page');

page(require('../login/spec'));
