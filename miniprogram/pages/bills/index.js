// The bills (电费账单) of the owner's plants, newest first.
const i18n = require('../../utils/i18n');
const fmt = require('../../utils/format');
const { listPage } = require('../../utils/page');

function row(b) {
  return {
    id: b.id, title: `${b.plant_code} · ${b.period}`, number: b.number, state: b.state,
    stateText: i18n.label(`bill_state.${b.state}`), total: fmt.yuan(b.total_fen), owed: fmt.yuan(b.owed_fen),
    owes: b.owed_fen > 0, due: b.due_on, url: `/pages/bills/detail?id=${b.id}`,
  };
}

listPage({ title: 'bills', call: 'bills', row });
