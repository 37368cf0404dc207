// The confirmation forms (电量确认单) of the owner's plants, newest first.
const i18n = require('../../utils/i18n');
const fmt = require('../../utils/format');
const { listPage } = require('../../utils/page');

function row(f) {
  return {
    id: f.id, title: `${f.plant_code} · ${f.period}`, state: f.state, stateText: i18n.label(`form_state.${f.state}`),
    version: i18n.t('version', { v: f.version }), generation: fmt.kwh(f.generation_kwh),
    due: f.state === 'sent' && f.answer_due_at ? i18n.t('answer_due', { time: fmt.when(f.answer_due_at) }) : '',
    url: `/pages/forms/detail?id=${f.id}`,
  };
}

listPage({ title: 'forms', call: 'forms', row });
