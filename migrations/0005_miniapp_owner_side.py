from tortoise import migrations
from tortoise.migrations import operations as ops
from settlement.models.enums import PlantRight
from settlement.models.miniapp import FaultState, SubscribeAnswer
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('settlement', '0004_bill_written_off_at')]

    initial = False

    operations = [
        ops.CreateModel(
            name='FaultReport',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('plant', fields.ForeignKeyField('settlement.Plant', source_field='plant_id', db_constraint=True, to_field='id', related_name='fault_reports', on_delete=OnDelete.CASCADE)),
                ('reported_by', fields.ForeignKeyField('settlement.WechatIdentity', source_field='reported_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('text', fields.CharField(max_length=1000)),
                ('state', fields.CharEnumField(default=FaultState.OPEN, description='OPEN: open\nIN_PROGRESS: in_progress\nRESOLVED: resolved', enum_type=FaultState, max_length=16)),
                ('staff_note', fields.CharField(null=True, max_length=500)),
                ('handled_by', fields.ForeignKeyField('settlement.Staff', source_field='handled_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('resolved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'fault_report', 'app': 'settlement', 'pk_attr': 'id', 'table_description': '报修: an owner reports a problem with a plant, staff work it to resolved.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Attachment',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('storage_key', fields.CharField(unique=True, max_length=128)),
                ('content_type', fields.CharField(max_length=32)),
                ('size_bytes', fields.IntField()),
                ('sha256', fields.CharField(max_length=64)),
                ('uploaded_by', fields.ForeignKeyField('settlement.WechatIdentity', source_field='uploaded_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('form', fields.ForeignKeyField('settlement.ConfirmationForm', source_field='form_id', null=True, db_constraint=True, to_field='id', related_name='attachments', on_delete=OnDelete.CASCADE)),
                ('fault', fields.ForeignKeyField('settlement.FaultReport', source_field='fault_id', null=True, db_constraint=True, to_field='id', related_name='attachments', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'attachment', 'app': 'settlement', 'pk_attr': 'id', 'table_description': 'A photo an owner uploaded with a dispute or a fault report, kept behind the storage port.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OwnerInvitation',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code_sha256', fields.CharField(unique=True, max_length=64)),
                ('owner', fields.ForeignKeyField('settlement.Owner', source_field='owner_id', db_constraint=True, to_field='id', related_name='invitations', on_delete=OnDelete.CASCADE)),
                ('issued_by', fields.ForeignKeyField('settlement.Staff', source_field='issued_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('used_by', fields.ForeignKeyField('settlement.WechatIdentity', source_field='used_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'owner_invitation', 'app': 'settlement', 'pk_attr': 'id', 'table_description': "A code staff give an owner to bind a WeChat user to the owner's account, used once, expiring."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PlantShare',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code_sha256', fields.CharField(unique=True, max_length=64)),
                ('plant', fields.ForeignKeyField('settlement.Plant', source_field='plant_id', db_constraint=True, to_field='id', related_name='shares', on_delete=OnDelete.CASCADE)),
                ('right', fields.CharEnumField(description='VIEW: view\nPAY: pay', enum_type=PlantRight, max_length=8)),
                ('created_by', fields.ForeignKeyField('settlement.WechatIdentity', source_field='created_by_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('redeemed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('redeemed_by', fields.ForeignKeyField('settlement.WechatIdentity', source_field='redeemed_by_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'plant_share', 'app': 'settlement', 'pk_attr': 'id', 'table_description': 'A one-time code an owner makes to give a right on one plant to whoever redeems it first.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SubscribeAcceptance',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('identity', fields.ForeignKeyField('settlement.WechatIdentity', source_field='identity_id', db_constraint=True, to_field='id', related_name='subscriptions', on_delete=OnDelete.CASCADE)),
                ('template_id', fields.CharField(max_length=64)),
                ('answer', fields.CharEnumField(description='ACCEPT: accept\nREJECT: reject\nBAN: ban', enum_type=SubscribeAnswer, max_length=8)),
                ('accepts', fields.IntField(default=0)),
                ('used', fields.IntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'subscribe_acceptance', 'app': 'settlement', 'unique_together': (('identity', 'template_id'),), 'pk_attr': 'id', 'table_description': 'The latest answer of one WeChat user for one subscribe-message template.'},
            bases=['Model'],
        ),
    ]
