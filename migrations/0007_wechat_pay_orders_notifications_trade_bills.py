from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from settlement.models.pay import NotificationOutcome, PayOrderState
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('settlement', '0006_telemetry_derived_fields_and_outages')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PayNotification',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('received_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('outcome', fields.CharEnumField(description='ACCEPTED: accepted\nDUPLICATE: duplicate\nUNMATCHED: unmatched\nIGNORED: ignored\nREFUSED: refused\nERROR: error', enum_type=NotificationOutcome, max_length=16)),
                ('reason', fields.CharField(null=True, max_length=500)),
                ('status', fields.SmallIntField(description='HTTP status answered')),
                ('notification_id', fields.CharField(null=True, max_length=64)),
                ('event_type', fields.CharField(null=True, max_length=40)),
                ('serial', fields.CharField(null=True, max_length=80)),
                ('signed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('out_trade_no', fields.CharField(null=True, db_index=True, max_length=64)),
                ('transaction_id', fields.CharField(null=True, max_length=64)),
                ('out_refund_no', fields.CharField(null=True, max_length=64)),
                ('headers', fields.JSONField(description='the Wechatpay-* headers', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('body', fields.TextField(unique=False)),
                ('resource', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'pay_notification', 'app': 'settlement', 'pk_attr': 'id', 'table_description': 'A notification received at /pay/notify, kept whatever became of it, for staff.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PayOrder',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('out_trade_no', fields.CharField(unique=True, max_length=32)),
                ('bill', fields.ForeignKeyField('settlement.Bill', source_field='bill_id', db_constraint=True, to_field='id', related_name='pay_orders', on_delete=OnDelete.RESTRICT)),
                ('attempt', fields.SmallIntField()),
                ('amount_fen', fields.BigIntField()),
                ('payer', fields.ForeignKeyField('settlement.WechatIdentity', source_field='payer_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('payer_openid', fields.CharField(max_length=64)),
                ('state', fields.CharEnumField(default=PayOrderState.PENDING, description='PENDING: pending\nPAID: paid\nCLOSED: closed\nFAILED: failed', enum_type=PayOrderState, max_length=16)),
                ('prepay_id', fields.CharField(null=True, max_length=64)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('transaction_id', fields.CharField(null=True, max_length=64)),
                ('failure', fields.CharField(null=True, description='why WeChat Pay refused the prepay', max_length=200)),
                ('notified_at', fields.DatetimeField(null=True, description='first accepted payment notification', auto_now=False, auto_now_add=False)),
                ('last_queried_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('settled_at', fields.DatetimeField(null=True, description='paid or closed', auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'pay_order', 'app': 'settlement', 'unique_together': (('bill', 'attempt'),), 'indexes': [Index(fields=['state', 'created_at'])], 'pk_attr': 'id', 'table_description': 'A WeChat Pay JSAPI order for one bill, or part of it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TradeBillReport',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bill_date', fields.DateField(unique=True, description='local business day')),
                ('checked_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('trades_there', fields.IntField()),
                ('trades_here', fields.IntField()),
                ('paid_there_fen', fields.BigIntField()),
                ('paid_here_fen', fields.BigIntField()),
                ('refunded_there_fen', fields.BigIntField()),
                ('refunded_here_fen', fields.BigIntField()),
                ('mismatch_count', fields.IntField()),
                ('mismatches', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'trade_bill_report', 'app': 'settlement', 'pk_attr': 'id', 'table_description': "One day's WeChat Pay trade bill compared with the payments and refunds recorded here."},
            bases=['Model'],
        ),
    ]
