from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from settlement.models.pay import PayOrderState
from settlement.models.prepaid import AlertState, CommandKind, CommandState, EntryKind, InvoiceState, SupplyState, Utility
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('settlement', '0008_dunning_plan')]

    initial = False

    operations = [
        ops.CreateModel(
            name='InvoiceRequest',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('request_key', fields.CharField(unique=True, description='payment or owner and month', max_length=64)),
                ('owner', fields.ForeignKeyField('settlement.Owner', source_field='owner_id', db_constraint=True, to_field='id', related_name='invoice_requests', on_delete=OnDelete.RESTRICT)),
                ('payment', fields.ForeignKeyField('settlement.Payment', source_field='payment_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('month', fields.CharField(null=True, description='YYYY-MM', max_length=7)),
                ('buyer_name', fields.CharField(max_length=100)),
                ('buyer_tax_id', fields.CharField(max_length=32)),
                ('amount_fen', fields.BigIntField()),
                ('tax_fen', fields.BigIntField()),
                ('state', fields.CharEnumField(default=InvoiceState.REQUESTED, description='REQUESTED: requested\nISSUED: issued\nFAILED: failed', enum_type=InvoiceState, max_length=16)),
                ('invoice_number', fields.CharField(null=True, max_length=40)),
                ('failure', fields.CharField(null=True, max_length=200)),
                ('document', fields.TextField(null=True, description='the rendered invoice', unique=False)),
                ('issued_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'invoice_request', 'app': 'settlement', 'pk_attr': 'id', 'table_description': "An e-invoice asked for one payment or one month of an owner, with the buyer's tax details."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PrepaidAccount',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('number', fields.CharField(unique=True, description='account number owners and payers quote', max_length=20)),
                ('owner', fields.ForeignKeyField('settlement.Owner', source_field='owner_id', db_constraint=True, to_field='id', related_name='prepaid_accounts', on_delete=OnDelete.RESTRICT)),
                ('plant', fields.ForeignKeyField('settlement.Plant', source_field='plant_id', null=True, db_constraint=True, to_field='id', related_name='prepaid_accounts', on_delete=OnDelete.RESTRICT)),
                ('name', fields.CharField(max_length=100)),
                ('warning_fen', fields.BigIntField(default=5000, description='[fen] low-balance warning level')),
                ('grace_hours', fields.SmallIntField(default=24, description='[h] from the cut-off notice to the cut-off')),
                ('no_cutoff_quiet_hours', fields.BooleanField(default=True, description='no cut-off 22-08 local time')),
                ('no_cutoff_holidays', fields.BooleanField(default=True)),
                ('holidays', fields.JSONField(default=list, description='local dates YYYY-MM-DD without cut-off', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('allow_pay_by_number', fields.BooleanField(default=False, description='anyone quoting the number may top up')),
                ('switch_serial', fields.CharField(description='the device that cuts and restores supply', max_length=32)),
                ('available_fen', fields.BigIntField(default=0, description='[fen] sum of the ledger entries')),
                ('alert_state', fields.CharEnumField(default=AlertState.NORMAL, description='NORMAL: normal\nWARNED: warned\nCUTOFF_PENDING: cutoff_pending\nCUT_OFF: cut_off', enum_type=AlertState, max_length=16)),
                ('supply', fields.CharEnumField(default=SupplyState.ON, description='ON: on\nOFF: off\nUNKNOWN: unknown', enum_type=SupplyState, max_length=8)),
                ('cutoff_due_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('warnings', fields.IntField(default=0, description='low-balance crossings so far')),
                ('crossings', fields.IntField(default=0, description='crossings to zero or below so far')),
                ('restores', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'prepaid_account', 'app': 'settlement', 'pk_attr': 'id', 'table_description': 'A prepaid account of an owner, for one site (plant) or for the owner as a whole.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PrepaidService',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('settlement.PrepaidAccount', source_field='account_id', db_constraint=True, to_field='id', related_name='services', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=64)),
                ('utility', fields.CharEnumField(description='ELECTRICITY: electricity\nWATER: water\nGAS: gas', enum_type=Utility, max_length=16)),
                ('unit', fields.CharField(description='kWh or m3', max_length=8)),
                ('tariff_code', fields.CharField(null=True, max_length=64)),
                ('follows_contract', fields.BooleanField(default=False)),
                ('meter', fields.ForeignKeyField('settlement.Meter', source_field='meter_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'prepaid_service', 'app': 'settlement', 'unique_together': (('account', 'name'),), 'pk_attr': 'id', 'table_description': 'One metered utility of an account (electricity, water, gas) with its own tariff and unit.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PrepaidEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('settlement.PrepaidAccount', source_field='account_id', db_constraint=True, to_field='id', related_name='entries', on_delete=OnDelete.RESTRICT)),
                ('key', fields.CharField(description='idempotency key unique per account', max_length=96)),
                ('kind', fields.CharEnumField(description='TOPUP: topup\nCHARGE: charge\nTRUE_UP: true_up\nREFUND: refund\nREFUND_RETURNED: refund_returned', enum_type=EntryKind, max_length=16)),
                ('amount_fen', fields.BigIntField()),
                ('available_after_fen', fields.BigIntField()),
                ('service', fields.ForeignKeyField('settlement.PrepaidService', source_field='service_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('day', fields.DateField(null=True, description='local day a charge is for')),
                ('quantity_milli', fields.BigIntField(null=True, description='usage behind a charge')),
                ('payment', fields.ForeignKeyField('settlement.Payment', source_field='payment_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('payer', fields.ForeignKeyField('settlement.WechatIdentity', source_field='payer_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('bill', fields.ForeignKeyField('settlement.Bill', source_field='bill_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('note', fields.CharField(default='', max_length=200)),
                ('posted_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'prepaid_entry', 'app': 'settlement', 'unique_together': (('account', 'key'),), 'indexes': [Index(fields=['account_id', 'day'])], 'pk_attr': 'id', 'table_description': 'A movement of a prepaid account: + top-up or returned refund, − charge, true-up or refund.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PrepaidUsage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('service', fields.ForeignKeyField('settlement.PrepaidService', source_field='service_id', db_constraint=True, to_field='id', related_name='usage', on_delete=OnDelete.CASCADE)),
                ('interval_start', fields.DatetimeField(description='UTC start of the interval', auto_now=False, auto_now_add=False)),
                ('quantity_milli', fields.BigIntField()),
                ('revision', fields.SmallIntField(default=1)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'prepaid_usage', 'app': 'settlement', 'unique_together': (('service', 'interval_start'),), 'pk_attr': 'id', 'table_description': 'Quantity used in one 15-minute interval of a service, as last received.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SupplyCommand',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('command_id', fields.CharField(unique=True, description='the device dedupes on it', max_length=48)),
                ('account', fields.ForeignKeyField('settlement.PrepaidAccount', source_field='account_id', db_constraint=True, to_field='id', related_name='commands', on_delete=OnDelete.RESTRICT)),
                ('kind', fields.CharEnumField(description='CUT_OFF: cut_off\nRESTORE: restore', enum_type=CommandKind, max_length=16)),
                ('target_serial', fields.CharField(max_length=32)),
                ('state', fields.CharEnumField(default=CommandState.PENDING, description='PENDING: pending\nACKNOWLEDGED: acknowledged\nFAILED: failed\nCANCELLED: cancelled', enum_type=CommandState, max_length=16)),
                ('attempts', fields.SmallIntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_error', fields.CharField(null=True, max_length=200)),
                ('acknowledged_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'supply_command', 'app': 'settlement', 'indexes': [Index(fields=['state', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': "A cut-off or restore command to an account's switch, retried until acknowledged."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TopUpOrder',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('out_trade_no', fields.CharField(unique=True, max_length=32)),
                ('account', fields.ForeignKeyField('settlement.PrepaidAccount', source_field='account_id', db_constraint=True, to_field='id', related_name='topup_orders', on_delete=OnDelete.RESTRICT)),
                ('attempt', fields.IntField()),
                ('amount_fen', fields.BigIntField()),
                ('payer', fields.ForeignKeyField('settlement.WechatIdentity', source_field='payer_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('payer_openid', fields.CharField(max_length=64)),
                ('state', fields.CharEnumField(default=PayOrderState.PENDING, description='PENDING: pending\nPAID: paid\nCLOSED: closed\nFAILED: failed', enum_type=PayOrderState, max_length=16)),
                ('prepay_id', fields.CharField(null=True, max_length=64)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('transaction_id', fields.CharField(null=True, max_length=64)),
                ('failure', fields.CharField(null=True, max_length=200)),
                ('settled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'topup_order', 'app': 'settlement', 'unique_together': (('account', 'attempt'),), 'pk_attr': 'id', 'table_description': 'A WeChat Pay JSAPI order topping up a prepaid account (``out_trade_no`` starts with T).'},
            bases=['Model'],
        ),
    ]
